//! Generated protobuf types and services, and the descriptor set (with the
//! google imports) that the transcoder and reflection read at start-up.

#![allow(clippy::all, missing_docs)]

pub mod practice {
    pub mod v1 {
        tonic::include_proto!("practice.v1");
    }
}

pub mod google {
    pub mod api {
        tonic::include_proto!("google.api");
    }
}

/// The encoded `FileDescriptorSet` of every proto the service is built from.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("practice_descriptor");

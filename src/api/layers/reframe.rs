//! A gRPC reply body re-framed for another protocol as it arrives: each
//! whole reply message is re-written by a `Reframe` (Connect envelopes,
//! gRPC-Web JSON frames, Server-Sent Events), and the trailers become that
//! protocol's ending. One loop for every streaming protocol the layers
//! speak besides gRPC itself.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body as HttpBody, Frame};
use tonic::Status;
use tonic::body::Body;

use super::unary;

/// How one protocol writes a gRPC reply stream.
pub trait Reframe: Send + Unpin + 'static {
    /// The reply's bytes can go out as they are (nothing to re-write).
    fn passthrough(&self) -> bool {
        false
    }

    /// Writes one reply message.
    fn message(&self, message: &[u8], out: &mut BytesMut) -> Result<(), Status>;

    /// The last bytes of a stream that ended with `status` (`None` or OK:
    /// without error) and these trailers; `None` to send nothing more.
    fn end(&self, status: Option<&Status>, trailers: &HeaderMap) -> Option<Bytes>;
}

pub struct ReframedBody<R> {
    inner: Body,
    /// A Trailers-Only reply's status, sent as the ending at once.
    early: Option<Status>,
    reframe: R,
    /// Reply bytes not yet a whole gRPC message.
    pending: BytesMut,
    ended: bool,
}

impl<R: Reframe> ReframedBody<R> {
    pub fn new(inner: Body, early: Option<Status>, reframe: R) -> Self {
        Self {
            inner,
            early,
            reframe,
            pending: BytesMut::new(),
            ended: false,
        }
    }

    /// The whole messages in `pending`, re-written.
    fn messages(&mut self) -> Result<BytesMut, Status> {
        let mut out = BytesMut::new();
        while let Some(message) = unary::next_message(&mut self.pending)? {
            self.reframe.message(&message, &mut out)?;
        }
        Ok(out)
    }

    fn end(
        &mut self,
        status: Option<&Status>,
        trailers: &HeaderMap,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        self.ended = true;
        Poll::Ready(
            self.reframe
                .end(status, trailers)
                .map(|b| Ok(Frame::data(b))),
        )
    }
}

impl<R: Reframe> HttpBody for ReframedBody<R> {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        if let Some(status) = self.early.take() {
            return self.end(Some(&status), &HeaderMap::new());
        }
        loop {
            let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => frame,
                Poll::Ready(Some(Err(status))) => {
                    return self.end(Some(&status), &HeaderMap::new());
                }
                Poll::Ready(None) => {
                    let status = Status::internal("the RPC ended without a status");
                    return self.end(Some(&status), &HeaderMap::new());
                }
            };
            let data = match frame.into_trailers() {
                Ok(trailers) => {
                    let status = Status::from_header_map(&trailers);
                    return self.end(status.as_ref(), &trailers);
                }
                Err(frame) => match frame.into_data() {
                    Ok(data) => data,
                    Err(_) => continue,
                },
            };
            if self.reframe.passthrough() {
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
            self.pending.extend_from_slice(&data);
            match self.messages() {
                Ok(out) if out.is_empty() => continue,
                Ok(out) => return Poll::Ready(Some(Ok(Frame::data(out.freeze())))),
                Err(status) => return self.end(Some(&status), &HeaderMap::new()),
            }
        }
    }
}

//! A cap on open connections: past `PRACTICE_MAX_CONNECTIONS` the server
//! stops accepting until one closes, and the kernel's listen backlog holds
//! the rest. Each connection costs buffers and a task whatever it sends, so
//! this, with the ingress's byte budget, is what bounds the memory of many
//! idle or slow clients.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_stream::Stream;
use tokio_util::sync::PollSemaphore;
use tonic::transport::server::Connected;

/// Accepted connections, at most `max` open at once.
pub fn limited<S, IO>(incoming: S, max: usize) -> Limited<S>
where
    S: Stream<Item = io::Result<IO>> + Unpin,
{
    Limited {
        incoming,
        slots: PollSemaphore::new(Arc::new(Semaphore::new(max))),
        slot: None,
    }
}

pub struct Limited<S> {
    incoming: S,
    slots: PollSemaphore,
    /// A slot taken for the next connection.
    slot: Option<OwnedSemaphorePermit>,
}

impl<S, IO> Stream for Limited<S>
where
    S: Stream<Item = io::Result<IO>> + Unpin,
{
    type Item = io::Result<Counted<IO>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.slot.is_none() {
            // Not accepting while every slot is taken.
            match ready!(self.slots.poll_acquire(cx)) {
                Some(slot) => self.slot = Some(slot),
                None => return Poll::Ready(None),
            }
        }
        match ready!(Pin::new(&mut self.incoming).poll_next(cx)) {
            Some(Ok(io)) => {
                let slot = self.slot.take().expect("taken above");
                Poll::Ready(Some(Ok(Counted { io, _slot: slot })))
            }
            Some(Err(e)) => Poll::Ready(Some(Err(e))),
            None => Poll::Ready(None),
        }
    }
}

/// A connection holding its slot until it is dropped.
pub struct Counted<IO> {
    io: IO,
    _slot: OwnedSemaphorePermit,
}

impl<IO: Connected> Connected for Counted<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Counted<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Counted<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

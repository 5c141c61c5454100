//! What sse-core knows about a client connection below HTTP: the write timeout on its
//! socket, whether the kernel cut the connection for it, and whether the peer closed it.
//!
//! A subscriber that stops reading (a phone on a dead network, a stuck proxy, a client that
//! never reads) closes its TCP receive window, and the server's bytes wait in the kernel. The
//! pull idioms never find out by themselves: hyper stops polling a body whose socket is full,
//! and with only keep-alives to send the socket never even fills, because Linux autotunes
//! the send buffer to megabytes, so a timeout on pending writes would never fire either. The
//! kernel knows: `TCP_USER_TIMEOUT` makes it abort a connection whose bytes stay
//! unacknowledged, or unsent behind a zero window, for that long. [`prepare`] sets it on
//! every accepted socket, and [`Watched`] wraps the socket to notice the `ETIMEDOUT` that the
//! abort reports, so that the stream's [`crate::metrics::ClientGuard`] counts the cut as a
//! slow-consumer disconnect.
//!
//! [`Watched`] also notes a read that finds the peer's close (end of file, or a reset).
//! hyper ends a response when it reads that; actix reads it too but goes on streaming, as
//! if the client had only half-closed, until a write fails. The push loop's sweep asks
//! [`Connection::peer_closed`] so that a client that left is let go without waiting for a
//! write.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// One accepted connection, as its streams' guards see it.
#[derive(Debug, Default)]
pub struct Connection {
    /// Set once the kernel reported that it cut the connection (`ETIMEDOUT`).
    timed_out: AtomicBool,
    /// Set once a read found the peer's close: end of file, or a reset.
    peer_closed: AtomicBool,
}

impl Connection {
    /// Whether the kernel cut this connection for holding unacknowledged bytes too long.
    pub fn timed_out(&self) -> bool {
        self.timed_out.load(Ordering::Acquire)
    }

    /// Whether the peer closed the connection, as far as the server has read it. An
    /// EventSource never half-closes: a close means the client is gone.
    pub fn peer_closed(&self) -> bool {
        self.peer_closed.load(Ordering::Acquire)
    }
}

/// Sets the write timeout on an accepted socket (`TCP_USER_TIMEOUT`, on Linux).
///
/// Elsewhere there is no such option, and only the slow-consumer queue (`--queue`) bounds a
/// stalled subscriber: it is cut once it is that many events behind.
pub fn prepare(socket: socket2::SockRef<'_>, write_timeout: Duration) -> io::Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    socket.set_tcp_user_timeout(Some(write_timeout))?;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = (socket, write_timeout);
    Ok(())
}

/// A connection's I/O that notes, in its [`Connection`], when the kernel reports a timeout.
#[derive(Debug)]
pub struct Watched<IO> {
    /// The socket (or the TLS stream over it).
    io: IO,
    /// Where the timeout is noted.
    connection: Arc<Connection>,
}

impl<IO> Watched<IO> {
    /// Wraps `io`, noting timeouts in a fresh [`Connection`].
    pub fn new(io: IO) -> Self {
        Watched {
            io,
            connection: Arc::default(),
        }
    }

    /// The connection's state, to hand to the requests it carries.
    pub fn connection(&self) -> &Arc<Connection> {
        &self.connection
    }

    /// The wrapped I/O.
    pub fn get_ref(&self) -> &IO {
        &self.io
    }

    /// Passes `poll` through, noting a timeout if it reports one.
    fn note<T>(&self, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if let Poll::Ready(Err(error)) = &poll
            && error.kind() == io::ErrorKind::TimedOut
        {
            self.connection.timed_out.store(true, Ordering::Release);
        }
        poll
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let room = buf.remaining();
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.io).poll_read(cx, buf);
        let closed = match &poll {
            // Nothing read into a buffer with room: the end of the peer's stream.
            Poll::Ready(Ok(())) => room > 0 && buf.filled().len() == before,
            Poll::Ready(Err(error)) => error.kind() == io::ErrorKind::ConnectionReset,
            Poll::Pending => false,
        };
        if closed {
            self.connection.peer_closed.store(true, Ordering::Release);
        }
        self.note(poll)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Watched<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write(cx, buf);
        self.note(poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.note(poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.io).poll_flush(cx);
        self.note(poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.io).poll_shutdown(cx);
        self.note(poll)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// The whole mechanism on a real socket: a peer that never reads closes its window, the
    /// kernel cuts the connection after the write timeout, and the wrapper notices.
    #[tokio::test]
    async fn a_peer_that_never_reads_is_cut_and_noted() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("rcvbuf");
        let peer = socket
            .connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (accepted, _) = listener.accept().await.expect("accept");
        prepare(
            socket2::SockRef::from(&accepted),
            Duration::from_millis(300),
        )
        .expect("set");
        let mut watched = Watched::new(accepted);
        let connection = Arc::clone(watched.connection());
        let chunk = [b'x'; 16 * 1024];
        let outcome = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                if let Err(error) = watched.write_all(&chunk).await {
                    break error;
                }
            }
        })
        .await
        .expect("the kernel cuts the connection well within 20 s");
        assert_eq!(outcome.kind(), io::ErrorKind::TimedOut, "{outcome}");
        assert!(connection.timed_out());
        drop(peer);
    }

    /// A loopback connection: the client's end, and the accepted end, watched.
    async fn watched_pair() -> (tokio::net::TcpStream, Watched<tokio::net::TcpStream>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let peer = tokio::net::TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (accepted, _) = listener.accept().await.expect("accept");
        (peer, Watched::new(accepted))
    }

    #[tokio::test]
    async fn ordinary_errors_are_not_timeouts() {
        let (peer, mut watched) = watched_pair().await;
        drop(peer);
        let mut buf = [0; 8];
        assert_eq!(watched.read(&mut buf).await.expect("EOF is no error"), 0);
        assert!(!watched.connection().timed_out());
        assert!(watched.connection().peer_closed(), "the close was read");
    }

    #[tokio::test]
    async fn a_peer_that_sends_is_not_closed_until_it_closes() {
        let (mut peer, mut watched) = watched_pair().await;
        peer.write_all(b"GET").await.expect("send");
        let mut buf = [0; 8];
        assert_eq!(watched.read(&mut buf).await.expect("read"), 3);
        assert!(!watched.connection().peer_closed(), "data is no close");
        drop(peer);
        assert_eq!(watched.read(&mut buf).await.expect("EOF"), 0);
        assert!(watched.connection().peer_closed());
    }
}

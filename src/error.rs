//! [`Error`]: what warren's own calls fail with.

use crate::config::ConfigError;
use std::fmt;
use std::io;

/// `Result` with warren's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// A failure of one of warren's calls.
///
/// One opaque type for the whole library (as hyper and walkdir do): its
/// message says what went wrong in words, and a few predicates say what
/// kind of failure it is, so a caller can act on it without parsing text:
///
/// - [`Error::is_config`]: a configuration directory
///   ([`config::load_dir`](crate::config::load_dir)) cannot be used; the
///   detailed error, with file, line, column and key, is
///   [`Error::config_error`].
/// - [`Error::is_invalid_input`]: what the program built (a
///   [`ContextInfo`](crate::ContextInfo), a vhost, a mount, a plugin's
///   options) is refused: no vhost, a header that could split responses,
///   a timeout past [`MAX_TIMEOUT`](crate::MAX_TIMEOUT), a mount naming a
///   protocol the vhost lacks, an unknown plugin.
/// - [`Error::is_bind`]: an address cannot be listened on (in use, not on
///   this machine, or not allowed).
/// - [`Error::is_io`]: any other failure of the system: a mount's
///   directory or archive that cannot be opened, an access log that
///   cannot be created, too few file descriptors, a file `pack` cannot
///   read.
///
/// The operating system's error, where there is one, is
/// [`Error::io_error`] (and the [`source`](std::error::Error::source)).
/// An `Error` converts into an [`io::Error`], so `?` works in a function
/// returning `io::Result`.
pub struct Error {
    inner: Box<Inner>,
}

struct Inner {
    kind: Kind,
    repr: Repr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Config,
    InvalidInput,
    Bind,
    Io,
}

enum Repr {
    /// The message is the whole error.
    #[cfg_attr(not(feature = "appliance"), allow(dead_code))]
    Message(String),
    /// The system's error, whose message (often with context the library
    /// added in front) is the error's.
    Io(io::Error),
    /// A configuration directory's error.
    Config(ConfigError),
}

impl Error {
    fn new(kind: Kind, repr: Repr) -> Error {
        Error { inner: Box::new(Inner { kind, repr }) }
    }

    /// Something the caller built is refused; `message` says what.
    #[cfg_attr(not(feature = "appliance"), allow(dead_code))]
    pub(crate) fn invalid_input(message: impl Into<String>) -> Error {
        Error::new(Kind::InvalidInput, Repr::Message(message.into()))
    }

    /// An address cannot be listened on; `e` says which and why.
    pub(crate) fn bind(e: io::Error) -> Error {
        Error::new(Kind::Bind, Repr::Io(e))
    }

    /// A configuration directory cannot be used.
    pub fn is_config(&self) -> bool {
        self.inner.kind == Kind::Config
    }

    /// What the program asked for is refused (a vhost, a mount, a limit,
    /// a plugin or its options); nothing of the system failed.
    pub fn is_invalid_input(&self) -> bool {
        self.inner.kind == Kind::InvalidInput
    }

    /// An address cannot be listened on: in use, not an address of this
    /// machine, or not allowed (a port below 1024 without privilege).
    pub fn is_bind(&self) -> bool {
        self.inner.kind == Kind::Bind
    }

    /// Some other failure of the system: a file or directory that cannot
    /// be opened or read, too few file descriptors, a failed poll.
    pub fn is_io(&self) -> bool {
        self.inner.kind == Kind::Io
    }

    /// The system's error behind this one, if there is one: its
    /// [`kind`](io::Error::kind) and [`raw_os_error`](io::Error::raw_os_error)
    /// say more (`AddrInUse` or `AddrNotAvailable` for a bind, say).
    pub fn io_error(&self) -> Option<&io::Error> {
        match &self.inner.repr {
            Repr::Io(e) => Some(e),
            _ => None,
        }
    }

    /// The configuration error, with its file, line and column, when
    /// [`is_config`](Error::is_config).
    pub fn config_error(&self) -> Option<&ConfigError> {
        match &self.inner.repr {
            Repr::Config(e) => Some(e),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner.repr {
            Repr::Message(m) => f.write_str(m),
            Repr::Io(e) => e.fmt(f),
            Repr::Config(e) => e.fmt(f),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("warren::Error");
        d.field("kind", &self.inner.kind);
        match &self.inner.repr {
            Repr::Message(m) => d.field("message", m),
            Repr::Io(e) => d.field("io", e),
            Repr::Config(e) => d.field("config", e),
        };
        d.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.inner.repr {
            Repr::Message(_) => None,
            Repr::Io(e) => Some(e),
            Repr::Config(e) => Some(e),
        }
    }
}

/// A failure of the system: [`Error::is_io`].
impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::new(Kind::Io, Repr::Io(e))
    }
}

/// [`Error::is_config`], with the detailed error kept.
impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Error {
        Error::new(Kind::Config, Repr::Config(e))
    }
}

/// The system's error as it was, when there is one; else an error of
/// kind `InvalidInput` (refused input or configuration) or `Other`
/// carrying this one, with the same message.
impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        let kind = match e.inner.kind {
            Kind::Config | Kind::InvalidInput => io::ErrorKind::InvalidInput,
            Kind::Bind | Kind::Io => io::ErrorKind::Other,
        };
        match e.inner.repr {
            Repr::Io(io) => io,
            _ => io::Error::new(kind, e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn loop_errors_say_their_kind_and_keep_their_text() {
        let e = Error::invalid_input("no vhost to serve");
        assert!(e.is_invalid_input() && !e.is_io() && !e.is_bind() && !e.is_config());
        assert_eq!(e.to_string(), "no vhost to serve");
        let os = io::Error::from(io::ErrorKind::PermissionDenied);
        let e = Error::bind(io::Error::new(os.kind(), format!("cannot listen on 0.0.0.0:80: {os}")));
        assert!(e.is_bind(), "{e:?}");
        assert!(e.to_string().starts_with("cannot listen on 0.0.0.0:80: "));
        assert_eq!(e.io_error().map(io::Error::kind), Some(io::ErrorKind::PermissionDenied));
        let e = Error::from(io::Error::new(io::ErrorKind::NotFound, "/srv/x: not found"));
        assert!(e.is_io() && e.source().is_some());
    }

    #[test]
    fn config_errors_keep_their_details_and_text() {
        let c = ConfigError { file: "/etc/w/conf".into(), position: Some((3, 7)), message: "global.x: no".into() };
        let e = Error::from(c.clone());
        assert!(e.is_config());
        assert_eq!(e.to_string(), c.to_string());
        assert_eq!(e.config_error(), Some(&c));
    }

    #[test]
    fn it_crosses_threads_and_boxes_as_a_std_error() {
        fn ok<T: Send + Sync + 'static + std::error::Error>() {}
        ok::<Error>();
        let boxed: Box<dyn std::error::Error + Send + Sync> = Error::invalid_input("x").into();
        assert_eq!(boxed.to_string(), "x");
    }

    #[test]
    fn into_io_error_keeps_the_message_and_a_fitting_kind() {
        let e: io::Error = Error::invalid_input("bad header").into();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(e.to_string(), "bad header");
        let e: io::Error = Error::bind(io::Error::from(io::ErrorKind::AddrInUse)).into();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
    }
}

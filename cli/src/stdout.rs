//! Standard output as the commands write it: buffered, its errors naming it, a reader that went
//! away told apart from a real failure, and a stdout closed before we started noticed.

/// Standard output, buffered; its errors say they are standard output's (and keep their
/// kind, so a closed pipe is still recognized).
pub struct Out(std::io::BufWriter<std::io::StdoutLock<'static>>);

impl Out {
    pub fn stdout() -> Out {
        Out(std::io::BufWriter::new(std::io::stdout().lock()))
    }
}

fn tag(e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("writing to standard output: {e}"))
}

impl std::io::Write for Out {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf).map_err(tag)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush().map_err(tag)
    }
}

/// Write a command's whole output to stdout (errors propagate: a full disk or a closed stdout
/// is an error, a closed pipe ends the command quietly in `main`).
pub fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = Out::stdout();
    out.write_all(bytes)?;
    out.flush()?;
    Ok(())
}

/// Whether the error is the reader of our stdout having gone away (`| head`).
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    let pipe = std::io::ErrorKind::BrokenPipe;
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == pipe)
            || c.downcast_ref::<serde_json::Error>()
                .is_some_and(|j| j.io_error_kind() == Some(pipe))
    })
}

/// Whether standard output was closed when we started (`gemma-graph run ... >&-`). Rust's
/// runtime reopens a closed fd 1 as `/dev/null` (read-write) before `main`, so the output
/// would vanish with exit 0; a shell's `> /dev/null` opens it write-only, which tells the two
/// apart (Linux: `/proc/self/fdinfo`).
pub fn stdout_was_closed() -> bool {
    #[cfg(target_os = "linux")]
    {
        let target = std::fs::read_link("/proc/self/fd/1");
        let flags = std::fs::read_to_string("/proc/self/fdinfo/1").ok().and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("flags:"))
                .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
        });
        const O_ACCMODE: u32 = 0o3;
        const O_RDWR: u32 = 0o2;
        target.is_ok_and(|t| t == std::path::Path::new("/dev/null")) && flags.is_some_and(|f| f & O_ACCMODE == O_RDWR)
    }
    #[cfg(not(target_os = "linux"))]
    false
}

//! Parallel gzip: the stream is cut into 1 MiB chunks, each deflated on its own thread
//! (pigz's scheme: every chunk ends with a sync flush, so the raw deflate streams join
//! into one), and written in order with one gzip header and trailer. gzip is the slow
//! part of committing a layer; this uses every core for it. The output is deterministic
//! (it depends only on the input and the level), and memory is bounded by the chunks in
//! flight (two per worker).
//!
//! Failure is final: after the first error (a worker's, or the output's, e.g. ENOSPC)
//! every later `write`, `flush` and `finish` returns an error at once without touching
//! the output or waiting for a worker, and the workers are stopped and joined.
//! `tar::Builder` writes its end-of-archive blocks from `Drop`, so a writer that kept
//! going (or waited on a worker) after an error would hang the commit.

use flate2::{Compress, Compression, FlushCompress, Status};
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc;
use std::thread::JoinHandle;

const CHUNK: usize = 1 << 20;

type Job = (u64, Vec<u8>);
type Done = (u64, io::Result<Vec<u8>>);

pub struct ParGzWriter<W: Write> {
    /// `None` only after [`ParGzWriter::finish`] took it.
    out: Option<W>,
    buf: Vec<u8>,
    crc: crc32fast::Hasher,
    len: u64,
    next_in: u64,
    next_out: u64,
    pending: BTreeMap<u64, Vec<u8>>,
    jobs: Option<mpsc::SyncSender<Job>>,
    done: mpsc::Receiver<Done>,
    workers: Vec<JoinHandle<()>>,
    max_in_flight: u64,
    /// The first error, returned again by every later call.
    failed: Option<(io::ErrorKind, String)>,
}

impl<W: Write> ParGzWriter<W> {
    /// A writer compressing at `level` with `threads` workers (at least one).
    pub fn new(mut out: W, level: u32, threads: usize) -> io::Result<Self> {
        // Header: magic, deflate, no flags, mtime 0, no extra flags, OS unknown.
        out.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255])?;
        let threads = threads.max(1);
        let (jobs, job_rx) = mpsc::sync_channel::<Job>(threads);
        let job_rx = std::sync::Arc::new(std::sync::Mutex::new(job_rx));
        let (done_tx, done) = mpsc::channel::<Done>();
        let workers = (0..threads)
            .map(|_| {
                let (rx, tx) = (job_rx.clone(), done_tx.clone());
                std::thread::spawn(move || {
                    loop {
                        let job = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        let Ok((i, data)) = job else { break };
                        if tx.send((i, deflate_chunk(&data, level))).is_err() {
                            break;
                        }
                    }
                })
            })
            .collect();
        Ok(ParGzWriter {
            out: Some(out),
            buf: Vec::with_capacity(CHUNK),
            crc: crc32fast::Hasher::new(),
            len: 0,
            next_in: 0,
            next_out: 0,
            pending: BTreeMap::new(),
            jobs: Some(jobs),
            done,
            workers,
            max_in_flight: 2 * threads as u64,
            failed: None,
        })
    }

    /// Runs `f` unless an earlier call failed (then returns that error again at once).
    /// On error it remembers the error and stops the workers, so no thread is ever left
    /// waiting on a channel.
    fn guarded<T>(&mut self, f: impl FnOnce(&mut Self) -> io::Result<T>) -> io::Result<T> {
        if let Some((kind, msg)) = &self.failed {
            return Err(io::Error::new(*kind, format!("an earlier write failed: {msg}")));
        }
        f(self).inspect_err(|e| {
            self.failed = Some((e.kind(), e.to_string()));
            self.stop_workers();
        })
    }

    /// Closes the job queue and waits for the workers: each finishes at most the chunk
    /// in hand (its result goes to an unbounded channel) and exits.
    fn stop_workers(&mut self) {
        self.jobs = None;
        for w in std::mem::take(&mut self.workers) {
            let _ = w.join();
        }
    }

    fn out(&mut self) -> io::Result<&mut W> {
        self.out.as_mut().ok_or_else(|| io::Error::other("gzip writer already finished"))
    }

    fn submit(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        while self.next_in - self.next_out >= self.max_in_flight {
            self.collect_one()?;
        }
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.jobs
            .as_ref()
            .ok_or_else(|| io::Error::other("gzip workers stopped"))?
            .send((self.next_in, data))
            .map_err(|_| io::Error::other("gzip worker stopped"))?;
        self.next_in += 1;
        Ok(())
    }

    /// Wait for one chunk and write every chunk that is next in order.
    fn collect_one(&mut self) -> io::Result<()> {
        // Never wait for a chunk no worker holds: that would block forever.
        if self.next_in - self.next_out <= self.pending.len() as u64 {
            return Err(io::Error::other("gzip writer has no chunk in flight to wait for"));
        }
        let (i, result) = self.done.recv().map_err(|_| io::Error::other("gzip worker stopped"))?;
        self.pending.insert(i, result?);
        while let Some(chunk) = self.pending.remove(&self.next_out) {
            self.out()?.write_all(&chunk)?;
            self.next_out += 1;
        }
        Ok(())
    }

    /// Flush everything, write the final block and the trailer; returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.guarded(|w| {
            w.submit()?;
            while w.next_out < w.next_in {
                w.collect_one()?;
            }
            w.stop_workers();
            let crc = std::mem::take(&mut w.crc).finalize();
            let len = w.len as u32;
            let out = w.out()?;
            // An empty final block with fixed codes ends the deflate stream.
            out.write_all(&[0x03, 0x00])?;
            out.write_all(&crc.to_le_bytes())?;
            out.write_all(&len.to_le_bytes())
        })?;
        self.out.take().ok_or_else(|| io::Error::other("gzip writer already finished"))
    }
}

impl<W: Write> Drop for ParGzWriter<W> {
    fn drop(&mut self) {
        // Unfinished (an error, or abandoned): write nothing more, just stop the threads.
        self.stop_workers();
    }
}

impl<W: Write> Write for ParGzWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.guarded(|w| {
            let n = data.len().min(CHUNK - w.buf.len());
            w.buf.extend_from_slice(&data[..n]);
            w.crc.update(&data[..n]);
            w.len += n as u64;
            if w.buf.len() == CHUNK {
                w.submit()?;
            }
            Ok(n)
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        self.guarded(|_| Ok(()))
    }
}

/// Raw deflate of one chunk, ending in a sync flush so chunks concatenate.
fn deflate_chunk(data: &[u8], level: u32) -> io::Result<Vec<u8>> {
    let mut c = Compress::new(Compression::new(level), false);
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    let mut input = data;
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.capacity().max(64 * 1024));
        }
        let before = c.total_in();
        let status = c.compress_vec(input, &mut out, FlushCompress::Sync).map_err(io::Error::other)?;
        input = &input[(c.total_in() - before) as usize..];
        // Done when all input is taken and the flush did not run out of room.
        if input.is_empty() && out.len() < out.capacity() && status != Status::BufError {
            return Ok(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn roundtrip(data: &[u8], threads: usize) {
        let mut w = ParGzWriter::new(Vec::new(), 2, threads).unwrap();
        // Odd write sizes cross chunk boundaries.
        for part in data.chunks(300_001) {
            w.write_all(part).unwrap();
        }
        let gz = w.finish().unwrap();
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut back).unwrap();
        assert_eq!(back.len(), data.len());
        assert!(back == data, "content differs");
    }

    #[test]
    fn round_trips_text_random_and_empty() {
        let text: Vec<u8> = (0..700_000u32).flat_map(|i| format!("{i}\n").into_bytes()).collect();
        let mut x: u64 = 0x9e3779b97f4a7c15;
        let random: Vec<u8> = (0..3 * CHUNK + 17)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        for threads in [1, 2, 4] {
            roundtrip(&text, threads);
            roundtrip(&random, threads);
            roundtrip(&[], threads);
            roundtrip(&random[..CHUNK], threads);
        }
    }

    #[test]
    fn output_is_deterministic() {
        let data: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
        let one = |t| {
            let mut w = ParGzWriter::new(Vec::new(), 2, t).unwrap();
            w.write_all(&data).unwrap();
            w.finish().unwrap()
        };
        assert_eq!(one(1), one(3));
    }
}

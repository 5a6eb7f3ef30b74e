//! A recording, fault-injecting HTTP proxy in front of the real registry.
//!
//! Each request is read from the client, recorded, and either answered with a fault
//! (the first `faults` requests: 500s and connection resets in turn) or sent to the
//! registry on a fresh connection with `Connection: close`, whose answer is streamed back.
//! One request per client connection: the `Connection: close` answer ends it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub struct Proxy {
    pub addr: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    pub fn start(upstream: &str, faults: usize) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let faults = Arc::new(AtomicUsize::new(faults));
        let (up, reqs) = (upstream.to_string(), requests.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (up, reqs, faults) = (up.clone(), reqs.clone(), faults.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, &up, &reqs, &faults);
                });
            }
        });
        Proxy { addr, requests }
    }

    /// Request lines seen so far (`GET /v2/... HTTP/1.1`).
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve(client: TcpStream, upstream: &str, reqs: &Mutex<Vec<String>>, faults: &AtomicUsize) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut client = client;
    {
        let mut head = Vec::new();
        let mut content_length = 0usize;
        let mut chunked = false;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                content_length = v.trim().parse().unwrap_or(0);
            }
            if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
                chunked = true;
            }
            if lower.starts_with("connection:") {
                continue;
            }
            if line == "\r\n" {
                head.extend_from_slice(b"Connection: close\r\n\r\n");
                break;
            }
            head.extend_from_slice(line.as_bytes());
        }
        let request_line = String::from_utf8_lossy(&head).lines().next().unwrap_or("").to_string();
        reqs.lock().unwrap().push(request_line);
        let fault = faults.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).ok();
        if let Some(n) = fault {
            if n % 2 == 0 {
                client.write_all(
                    b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )?;
            }
            // Odd faults drop the connection: a reset for the client.
            return Ok(());
        }
        let mut up = TcpStream::connect(upstream)?;
        up.write_all(&head)?;
        if chunked {
            loop {
                let mut size_line = String::new();
                reader.read_line(&mut size_line)?;
                up.write_all(size_line.as_bytes())?;
                let size = usize::from_str_radix(size_line.trim(), 16).unwrap_or(0);
                let mut chunk = vec![0u8; size + 2];
                reader.read_exact(&mut chunk)?;
                up.write_all(&chunk)?;
                if size == 0 {
                    break;
                }
            }
        } else {
            std::io::copy(&mut (&mut reader).take(content_length as u64), &mut up)?;
        }
        std::io::copy(&mut up, &mut client)?;
    }
    Ok(())
}

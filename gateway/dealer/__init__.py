"""The Beaver-triple dealer (CrypTen's TTP) as a federation service: a process of
its own, with its own certificate, that joins job sessions on request and serves
each from a worker process, over mutual TLS only."""

//! Stand-ins for the two servers `hostedscan-agent` talks to, for its integration tests,
//! examples and benchmarks: [`api`] is the HostedScan API (real HTTP/1.1 on 127.0.0.1) and
//! [`gmp`] is gvmd's Greenbone Management Protocol server (a Unix socket). Each runs in-process
//! on tokio, keeps its state in memory, lets a test inject faults and read back what it received.
//! Nothing here depends on the agent: the stand-ins follow the real servers, not the client.

pub mod api;
pub mod gmp;

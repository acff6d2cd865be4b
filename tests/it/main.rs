//! Integration tests: the real agent (in-process and as the built binary) against a HostedScan
//! stand-in on 127.0.0.1. One test binary; each module is one area of the contract.

mod harness;
mod hostile;

mod alerts;
mod cli;
mod crash;
mod custody;
mod daemon;
#[cfg(feature = "failpoints")]
mod failpoints;
mod faults;
mod gmp_standin;
mod jobs;
mod layers;
mod manpage;
mod once;
mod openvas;
mod outage;
mod progress;
mod samples;
mod service;
mod sources;
mod state;
mod tls;
mod volume;
mod zap;

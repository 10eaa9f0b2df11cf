//! Integration tests of the format core, in one binary.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod atomic;
mod changing;
mod corpus;
mod durable;
mod malformed;
mod props;
mod reference;
mod sharded;
mod slicing;
mod testutil;

//! Integration tests of the format core, in one binary.

mod atomic;
mod corpus;
mod malformed;
mod props;
mod reference;
mod sharded;
mod slicing;
mod testutil;

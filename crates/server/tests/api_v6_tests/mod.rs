//! The e2e_api_v6 tests past routes and status codes, one module per concern.

mod batch;
mod connections;
mod error_mode;
mod publish;
mod shapes;

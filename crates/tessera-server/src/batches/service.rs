//! The rules of batches, shared by the v1 API and the dashboard.

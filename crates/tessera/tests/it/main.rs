//! Integration tests: each starts the real server on a random port against a fresh database,
//! once on SQLite and once on PostgreSQL (see `helpers::backend_test!`).

mod helpers;

mod accounts;
mod admin_handover;
mod api;
mod audit_log;
mod authz;
mod billing;
mod callbacks;
mod cli;
mod client_ip;
mod durability;
mod email_verification;
mod emulators;
mod files;
mod integrations;
mod invariants;
mod key_roll;
mod labeling;
mod mail;
mod migrations;
mod onboarding;
mod password_reset;
mod promises;
mod sealing;
mod server;
mod spend_alerts;
mod staff_billing;
mod stripe;
mod task_view;
mod team;
mod two_factor;

//! A generic Server-Sent Events parser for provider streams (sans-IO).

//! Built-in applicable conditions (placeholder until merged).

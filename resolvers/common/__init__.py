"""What every service shares: user-facing failures as data, opaque ids and cursors, background loops."""

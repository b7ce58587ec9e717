//! Compiled map image → kernel.

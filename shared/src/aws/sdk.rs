//! SDK implementations of the traits in [`super`] (being written).

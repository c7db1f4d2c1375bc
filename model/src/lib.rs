//! Stateright models of the real ldapmux-core (in progress).

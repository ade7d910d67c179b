"""`avel demo`: a generated mini dataset, served on loopback, through every stage."""

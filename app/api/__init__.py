"""HTTP-edge helpers: dependency providers shared by the routes."""

"""HTTP routes: webhook intake, runs API, dashboard, health and metrics."""

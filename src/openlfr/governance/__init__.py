"""The rules OpenLFR enforces: watchlist policy categories, deployment rules, retention, audit."""

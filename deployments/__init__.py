"""Ray Serve applications of PRSM and their config files."""

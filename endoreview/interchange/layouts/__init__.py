"""Public dataset layouts as they ship (folders and zips)."""

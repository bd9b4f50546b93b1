"""HTTP routes: inference (/classify, /ground, /segment) and operations (health, OIP, metrics)."""

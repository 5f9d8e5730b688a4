"""HTTP routes of the instance."""

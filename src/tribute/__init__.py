"""tribute: attribution you can measure."""

"""Booking: the business's catalog and the times it can offer."""

"""Watching the senders and the planned work: heartbeats, hold windows, and the worker's pass over both."""

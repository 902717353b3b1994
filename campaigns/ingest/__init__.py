"""Readers that turn import files into validated `ItemRow`s, streaming; no database access here."""

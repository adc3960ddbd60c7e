"""Drift: is the live gateway still what was applied, and what the profiles say?"""

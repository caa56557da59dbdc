"""The Zoho CRM side of the house: OAuth, the REST client and its errors.

Nothing in this package imports Flask or the sync engine, so it can be used (and tested)
on its own.
"""

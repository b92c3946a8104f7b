"""Fulfillment: shipment ETA (P50 and P90 delivery hours) served online."""

"""Composer's side: Marketplace keys, Composer repositories, constraints, the Composer mirror."""

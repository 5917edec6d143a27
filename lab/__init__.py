"""The lab: the whole platform on one Linux machine (see README, "The lab")."""

"""Evaluation of a distilled student against its teacher."""

"""Discrete-event simulator: does dynoscaler's capacity model beat the usual autoscalers?"""

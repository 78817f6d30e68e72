"""Measuring a policy's motion: deterministic rollouts in the evaluation env, fall test, gait metrics, footfall
classes, speed probes and sweeps, command schedules. Used by the training probe and by the evaluation; imports
nothing from training, evaluation or deploy."""

// How a front end stops a long solve: it installs a poll that says whether its user asked to stop
// (the Python package: a pending Ctrl-C), and the solver's loops ask it once per sweep, between
// reductions and outside any parallel region, so that a stop arrives within one sweep on every
// backend. Without a poll (the command line, C++ callers) nothing is asked.
#pragma once

namespace sinkhorn::util {

/// Returns true when the solve should stop. Called from the thread that runs the solve.
using InterruptPoll = bool (*)();

/// Installs `poll` for every later solve of the process (nullptr: none).
void set_interrupt_poll(InterruptPoll poll);

/// Throws sinkhorn::Interrupted when the installed poll says so.
void throw_if_interrupted();

}  // namespace sinkhorn::util

"""After the PR (issue 11): GitHub webhooks and polling → follow-up runs (`ci_fix`, `review_fix`)
on the PR's own branch, their limits, and the end of the PR's life. See docs/ARCHITECTURE.md.

The runner package is imported first on purpose: its workflow module mixes in `walk.FollowupWalk`,
and `walk` imports the runner's modules, so entering through this package first would otherwise
meet a half-initialised runner.
"""

import app.services.runner  # noqa: F401 - initialise the runner package (and through it, walk.py) first

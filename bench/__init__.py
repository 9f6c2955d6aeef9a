"""`make bench`: the built function against same-run baselines under the Lambda emulator."""

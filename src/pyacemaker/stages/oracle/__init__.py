"""The oracle: labels structures (QE DFT, or the EMT reference), heals failures, embeds clusters."""

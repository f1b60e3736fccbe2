"""The prompt texts several parts share, each written once: the benchmarks' own wording (CHAIR's captioning
request, LLaVA-1.5's short-answer suffix that POPE runs use, MME's yes/no request), which preference pairs and the
demo model must match word for word."""
from __future__ import annotations

#: CHAIR / OPERA's captioning prompt
DESCRIBE = "Please describe this image in detail."
#: LLaVA-1.5's short-answer instruction, appended to POPE questions
SHORT_ANSWER = "\nAnswer the question using a single word or phrase."
#: how every MME question ends
YES_NO = " Please answer yes or no."

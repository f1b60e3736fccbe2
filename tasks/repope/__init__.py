"""RePOPE (Neuhaus & Hein, 2025): POPE's COCO questions with corrected labels, scored the RePOPE way."""

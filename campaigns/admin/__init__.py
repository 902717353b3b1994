"""Admin for annotator ops: items and their Label Studio sync state, annotations, cycles with progress.

Writes go through services (project_update, items_set_state), never through a model form saving whatever it was
given. Records that explain past decisions (cycles, scores, selections) are view-only. Pools run to millions of
items and scores, so list pages join what they show (list_select_related), never count whole tables where they can
avoid it, and use raw-id widgets instead of a <select> of every item.
"""

from campaigns.admin import cycles, exports, items, labels, pretraining, projects, simulations

__all__ = ["cycles", "exports", "items", "labels", "pretraining", "projects", "simulations"]

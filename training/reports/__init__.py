"""Report parsing: free-text chest X-ray reports -> anatomy x pathology labels (rule-based).

See docs/reports_parser.md for the rules, the label policy and the measured accuracy.
"""

from training.reports.parser import ReportLabels, parse_report
from training.reports.templates import jsrt_report, kermany_report

__all__ = ["ReportLabels", "jsrt_report", "kermany_report", "parse_report"]

#!/usr/bin/env python3
"""Write a realistic ZAP traditional JSON report (`-J`) of about SIZE MiB: many sites, each
with alerts whose descriptions hold HTML, escapes and non-ASCII text, and many instances per
alert; closed properly. Usage: gen_zap_json.py SIZE_MIB OUT"""
import json
import sys

size = int(sys.argv[1]) * 1024 * 1024
out = sys.argv[2]
instance = {
    "uri": "http://{host}/app/item?id={n}&q=%3Cscript%3E",
    "method": "GET",
    "param": "q",
    "attack": "<script>alert(\"1\");</script>",
    "evidence": "<script>alert(\"1\");</script>",
    "otherinfo": "Réponse reflétée \u2014 line one\nline two\t\\ end",
}
alert = {
    "pluginid": "40012",
    "alertRef": "40012",
    "alert": "Cross Site Scripting (Reflected)",
    "name": "Cross Site Scripting (Reflected)",
    "riskcode": "3",
    "confidence": "2",
    "riskdesc": "High (Medium)",
    "desc": "<p>Cross-site Scripting (XSS) is an attack technique that involves echoing attacker-supplied code into a user's browser instance.</p>",
    "count": "20",
    "solution": "<p>Phase: Architecture and Design</p><p>Use a vetted library or framework that does not allow this weakness to occur.</p>",
    "otherinfo": "",
    "reference": "<p>https://owasp.org/www-community/attacks/xss/</p>",
    "cweid": "79",
    "wascid": "8",
    "sourceid": "1",
}
with open(out, "w", encoding="utf-8") as f:
    f.write('{\n\t"@programName": "ZAP",\n\t"@version": "2.16.1",\n\t"@generated": "Sun, 6 Dec 2026 10:00:00",\n\t"created": "2026-12-06T10:00:00.000000Z",\n\t"site":[ \n')
    n = 0
    sites = 0
    while n < size:
        host = f"app-{sites}.corp.example"
        alerts = []
        for a in range(5):
            al = dict(alert)
            al["instances"] = [
                {k: v.format(host=host, n=i) for k, v in instance.items()} for i in range(20)
            ]
            alerts.append(al)
        site = {"@name": f"http://{host}", "@host": host, "@port": "80", "@ssl": "false", "alerts": alerts}
        s = ("" if sites == 0 else ",\n") + json.dumps(site, indent="\t", ensure_ascii=False)
        f.write(s)
        n += len(s.encode())
        sites += 1
    f.write("\n\t]\n}\n")

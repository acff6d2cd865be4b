#!/usr/bin/env python3
"""Write a realistic Nmap XML report of about SIZE MiB: many hosts, ports, services and NSE
script output with entities, closed properly. Usage: gen_nmap.py SIZE_MIB OUT"""
import sys

size = int(sys.argv[1]) * 1024 * 1024
out = sys.argv[2]
head = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE nmaprun>
<?xml-stylesheet href="file:///usr/bin/../share/nmap/nmap.xsl" type="text/xsl"?>
<!-- Nmap 7.93 scan initiated Thu Nov 26 23:00:00 2026 as: nmap -sV -sC -oX big.xml 10.0.0.0/8 -->
<nmaprun scanner="nmap" args="nmap -sV -sC -oX big.xml 10.0.0.0/8" start="1795734000" startstr="Thu Nov 26 23:00:00 2026" version="7.93" xmloutputversion="1.05">
<scaninfo type="syn" protocol="tcp" numservices="1000" services="1-1000"/>
<verbose level="0"/>
<debugging level="0"/>
"""
port = """<port protocol="tcp" portid="{p}"><state state="open" reason="syn-ack" reason_ttl="64"/><service name="http" product="nginx" version="1.18.0" extrainfo="Ubuntu" method="probed" conf="10"><cpe>cpe:/a:igor_sysoev:nginx:1.18.0</cpe></service><script id="http-title" output="Welcome to &quot;nginx&quot; &amp; friends &lt;3"><elem key="title">Welcome to &quot;nginx&quot;</elem></script></port>
"""
n = 0
hosts = 0
with open(out, "w") as f:
    f.write(head)
    while n < size:
        a, b = divmod(hosts, 65536)
        ip = f"10.{a % 256}.{b // 256}.{b % 256}"
        block = [f'<host starttime="1795734001" endtime="1795734100"><status state="up" reason="arp-response" reason_ttl="0"/>\n<address addr="{ip}" addrtype="ipv4"/>\n<hostnames><hostname name="host-{hosts}.corp.example" type="PTR"/></hostnames>\n<ports><extraports state="closed" count="990"><extrareasons reason="reset" count="990"/></extraports>\n']
        for p in (22, 80, 443, 8080, 8443, 3306, 5432, 6379, 9200, 11211):
            block.append(port.format(p=p))
        block.append('</ports>\n<times srtt="120" rttvar="50" to="100000"/>\n</host>\n')
        s = "".join(block)
        f.write(s)
        n += len(s)
        hosts += 1
    f.write(f'<runstats><finished time="1795737600" timestr="Fri Nov 27 00:00:00 2026" summary="Nmap done; {hosts} IP addresses ({hosts} hosts up) scanned" elapsed="3600.00" exit="success"/><hosts up="{hosts}" down="0" total="{hosts}"/>\n</runstats>\n</nmaprun>\n')

"""Raw ICMP: echo requests on a raw socket, the IP and ICMP headers decoded by hand."""

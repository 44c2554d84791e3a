module sysops/native/go

go 1.19

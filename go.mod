module github.com/houlsby/adapters

go 1.26

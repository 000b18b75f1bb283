module github.com/houlsby/adapters

go 1.26.0

require (
	github.com/BurntSushi/toml v1.6.0
	github.com/pkg/errors v0.9.1
	github.com/stretchr/testify v1.12.1
	golang.org/x/sys v0.50.0
	golang.org/x/text v0.44.0
	google.golang.org/protobuf v1.36.12
	gorgonia.org/cu v0.9.6
)

require (
	github.com/google/uuid v1.1.1 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
)

module greetd-bench/go-greetd

go 1.19

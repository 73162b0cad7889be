package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/cairn-mqtt/cairn/engine/auth"
)

// maxPassword is the longest password MQTT can carry.
const maxPassword = 65535

// passwdCommand is `cairn passwd add|delete FILE USER`: it edits a password
// file for --password-file.
func passwdCommand() *cli.Command {
	return &cli.Command{
		Name:  "passwd",
		Usage: "add, change or delete users of a password file (--password-file)",
		Description: "The password is read from the terminal (twice), or from the first line of standard input\n" +
			"when it is not a terminal. It is stored as a salted argon2id hash; the file is created\n" +
			"with mode 0600 and replaced atomically. A running broker rereads the file on SIGHUP.",
		Subcommands: []*cli.Command{
			{
				Name:      "add",
				Usage:     "add USER to FILE, or change USER's password",
				ArgsUsage: "FILE USER",
				Action:    passwdAdd,
			},
			{
				Name:      "delete",
				Usage:     "delete USER from FILE",
				ArgsUsage: "FILE USER",
				Action:    passwdDelete,
			},
		},
	}
}

func passwdArgs(c *cli.Context) (file, user string, err error) {
	if c.NArg() != 2 {
		return "", "", fmt.Errorf("passwd %s: want FILE USER, got %d arguments", c.Command.Name, c.NArg())
	}
	file, user = c.Args().Get(0), c.Args().Get(1)
	if err := auth.ValidateUser(user); err != nil {
		return "", "", fmt.Errorf("passwd %s: %w", c.Command.Name, err)
	}
	return file, user, nil
}

func passwdAdd(c *cli.Context) error {
	file, user, err := passwdArgs(c)
	if err != nil {
		return err
	}
	pw, err := readPassword(c.App.Reader, c.App.ErrWriter)
	if err != nil {
		return fmt.Errorf("passwd add: %w", err)
	}
	defer clear(pw)
	replaced, err := auth.AddUser(file, user, pw)
	if err != nil {
		return fmt.Errorf("passwd add: %w", err)
	}
	verb := "added to"
	if replaced {
		verb = "changed in"
	}
	fmt.Fprintf(c.App.Writer, "user %q %s %s\n", user, verb, file)
	return nil
}

func passwdDelete(c *cli.Context) error {
	file, user, err := passwdArgs(c)
	if err != nil {
		return err
	}
	if err := auth.DeleteUser(file, user); err != nil {
		return fmt.Errorf("passwd delete: %w", err)
	}
	fmt.Fprintf(c.App.Writer, "user %q deleted from %s\n", user, file)
	return nil
}

// readPassword reads a new password: from the terminal without echo,
// twice, when in is one (prompting on prompt), otherwise the first line of
// in (without its line ending).
func readPassword(in io.Reader, prompt io.Writer) ([]byte, error) {
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(prompt, "Password: ")
		pw, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(prompt)
		if err != nil {
			return nil, err
		}
		fmt.Fprint(prompt, "Repeat password: ")
		again, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(prompt)
		defer clear(again)
		if err != nil {
			clear(pw)
			return nil, err
		}
		if !bytes.Equal(pw, again) {
			clear(pw)
			return nil, errors.New("the passwords do not match")
		}
		return checkPassword(pw)
	}
	// Byte by byte, so that nothing after the first line is consumed.
	var line []byte
	b := make([]byte, 1)
	for len(line) <= maxPassword+1 {
		n, err := in.Read(b)
		if n == 1 {
			if b[0] == '\n' {
				break
			}
			line = append(line, b[0])
			continue
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			clear(line)
			return nil, fmt.Errorf("reading the password from standard input: %w", err)
		}
	}
	return checkPassword(bytes.TrimSuffix(line, []byte("\r")))
}

func checkPassword(pw []byte) ([]byte, error) {
	switch {
	case len(pw) == 0:
		return nil, errors.New("empty password")
	case len(pw) > maxPassword:
		clear(pw)
		return nil, fmt.Errorf("password longer than %d bytes", maxPassword)
	}
	return pw, nil
}
